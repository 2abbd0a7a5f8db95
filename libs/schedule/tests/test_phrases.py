"""Every accepted phrasing: its normalized schedule and its next fire time from a fixed now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import pytest

from chronoflow_contracts.schedule import NormalizedSchedule
from chronoflow_schedule import ACCEPTED_FORMS, next_after, parse

#: Thursday 2026-01-15 13:00:00.25 UTC: 10:00 in São Paulo, 14:00 in Berlin.
NOW = datetime(2026, 1, 15, 13, 0, 0, 250_000, tzinfo=UTC)
SP, BER, UTC_ = "America/Sao_Paulo", "Europe/Berlin", "UTC"


class Row(NamedTuple):
    phrase: str
    zone: str
    #: cron expression, or "every:<seconds>", or "once"
    shape: str
    language: str
    #: the next fire time strictly after NOW, UTC
    fires: str


ROWS: list[Row] = [
    # One-shot, relative: counted from NOW truncated to the second (13:00:00).
    Row("in 10 min", SP, "once", "en", "2026-01-15T13:10:00"),
    Row("in 10 minutes", SP, "once", "en", "2026-01-15T13:10:00"),
    Row("in 2h", SP, "once", "en", "2026-01-15T15:00:00"),
    Row("in 1 hour", SP, "once", "en", "2026-01-15T14:00:00"),
    Row("in 30 seconds", SP, "once", "en", "2026-01-15T13:00:30"),
    Row("em 10 min", SP, "once", "pt", "2026-01-15T13:10:00"),
    Row("em 10 minutos", SP, "once", "pt", "2026-01-15T13:10:00"),
    Row("daqui a 2 horas", SP, "once", "pt", "2026-01-15T15:00:00"),
    Row("in an hour", UTC_, "once", "en", "2026-01-15T14:00:00"),
    Row("in 1 hour 30 minutes", SP, "once", "en", "2026-01-15T14:30:00"),
    Row("in 1h30", SP, "once", "en", "2026-01-15T14:30:00"),
    Row("in 1h30m", BER, "once", "en", "2026-01-15T14:30:00"),
    Row("daqui a 1 hora e 30 minutos", SP, "once", "pt", "2026-01-15T14:30:00"),
    Row("dentro de 45 segundos", SP, "once", "pt", "2026-01-15T13:00:45"),
    Row("10 minutes from now", SP, "once", "en", "2026-01-15T13:10:00"),
    Row("em meia hora", SP, "once", "pt", "2026-01-15T13:30:00"),
    Row("in half an hour", SP, "once", "en", "2026-01-15T13:30:00"),
    Row("daqui 5 min", SP, "once", "pt", "2026-01-15T13:05:00"),
    Row("em uma hora", SP, "once", "pt", "2026-01-15T14:00:00"),
    Row("in 2 hours, 15 minutes and 10 seconds", UTC_, "once", "en", "2026-01-15T15:15:10"),
    # One-shot, absolute
    Row("2026-12-01T09:00:00-03:00", SP, "once", "en", "2026-12-01T12:00:00"),
    Row("2026-12-01T09:00:00-03:00", BER, "once", "en", "2026-12-01T12:00:00"),
    Row("2026-12-01T09:00", SP, "once", "en", "2026-12-01T12:00:00"),
    Row("2026-12-01T09:00:00Z", SP, "once", "en", "2026-12-01T09:00:00"),
    Row("2026-12-01 09:00", UTC_, "once", "en", "2026-12-01T09:00:00"),
    Row("2026-06-01T12:00:00+05:30", UTC_, "once", "en", "2026-06-01T06:30:00"),
    Row("2026-01-15T10:00:01", SP, "once", "en", "2026-01-15T13:00:01"),
    Row("at 2026-12-01 09:00", SP, "once", "en", "2026-12-01T12:00:00"),
    Row("at 2026-12-01 09:00", BER, "once", "en", "2026-12-01T08:00:00"),
    Row("tomorrow at 9:00", SP, "once", "en", "2026-01-16T12:00:00"),
    Row("amanhã às 9h", SP, "once", "pt", "2026-01-16T12:00:00"),
    Row("amanha as 9h", SP, "once", "pt", "2026-01-16T12:00:00"),
    Row("today at 18:00", SP, "once", "en", "2026-01-15T21:00:00"),
    Row("hoje às 18h", SP, "once", "pt", "2026-01-15T21:00:00"),
    Row("hoje as 18h", SP, "once", "pt", "2026-01-15T21:00:00"),
    Row("today at 18:00", BER, "once", "en", "2026-01-15T17:00:00"),
    Row("tomorrow at 7:30pm", UTC_, "once", "en", "2026-01-16T19:30:00"),
    Row("9am tomorrow", SP, "once", "en", "2026-01-16T12:00:00"),
    Row("às 9h de amanhã", SP, "once", "pt", "2026-01-16T12:00:00"),
    Row("on december 1 at 9am", SP, "once", "en", "2026-12-01T12:00:00"),
    Row("em 25 de dezembro de 2026 às 9h", SP, "once", "pt", "2026-12-25T12:00:00"),
    Row("25/12/2026 às 09:00", SP, "once", "pt", "2026-12-25T12:00:00"),
    Row("dia 10 de março às 14h", SP, "once", "pt", "2026-03-10T17:00:00"),
    Row("dia 10 de marco as 14h", SP, "once", "pt", "2026-03-10T17:00:00"),
    Row("depois de amanhã às 8h", SP, "once", "pt", "2026-01-17T11:00:00"),
    Row("march 3, 2027 at noon", UTC_, "once", "en", "2027-03-03T12:00:00"),
    Row("1 de janeiro às 00:00", SP, "once", "pt", "2027-01-01T03:00:00"),
    Row("the 3rd of february at 8:15", UTC_, "once", "en", "2026-02-03T08:15:00"),
    # Intervals: day-dividing ones align to local midnight, others anchor at NOW (13:00:00).
    Row("6h", SP, "0 */6 * * *", "en", "2026-01-15T15:00:00"),
    Row("6h", BER, "0 */6 * * *", "en", "2026-01-15T17:00:00"),
    Row("15m", SP, "*/15 * * * *", "en", "2026-01-15T13:15:00"),
    Row("30 min", SP, "*/30 * * * *", "en", "2026-01-15T13:30:00"),
    Row("every 15 minutes", SP, "*/15 * * * *", "en", "2026-01-15T13:15:00"),
    Row("every 2 hours", SP, "0 */2 * * *", "en", "2026-01-15T15:00:00"),
    Row("a cada 15 minutos", SP, "*/15 * * * *", "pt", "2026-01-15T13:15:00"),
    Row("a cada 2 horas", SP, "0 */2 * * *", "pt", "2026-01-15T15:00:00"),
    Row("de 6 em 6 horas", SP, "0 */6 * * *", "pt", "2026-01-15T15:00:00"),
    Row("de 15 em 15 minutos", SP, "*/15 * * * *", "pt", "2026-01-15T13:15:00"),
    Row("hourly", SP, "0 * * * *", "en", "2026-01-15T14:00:00"),
    Row("every hour", SP, "0 * * * *", "en", "2026-01-15T14:00:00"),
    Row("de hora em hora", SP, "0 * * * *", "pt", "2026-01-15T14:00:00"),
    Row("a cada hora", SP, "0 * * * *", "pt", "2026-01-15T14:00:00"),
    Row("7h", SP, "every:25200", "en", "2026-01-15T20:00:00"),
    Row("90 min", SP, "every:5400", "en", "2026-01-15T14:30:00"),
    Row("every 90 minutes", SP, "every:5400", "en", "2026-01-15T14:30:00"),
    Row("1h 30m", SP, "every:5400", "en", "2026-01-15T14:30:00"),
    Row("every 45 seconds", SP, "every:45", "en", "2026-01-15T13:00:45"),
    Row("every 7 minutes", SP, "every:420", "en", "2026-01-15T13:07:00"),
    Row("every 36 hours", SP, "every:129600", "en", "2026-01-17T01:00:00"),
    Row("a cada 7 horas", SP, "every:25200", "pt", "2026-01-15T20:00:00"),
    Row("every 30 seconds", SP, "*/30 * * * * *", "en", "2026-01-15T13:00:30"),
    Row("every minute", SP, "* * * * *", "en", "2026-01-15T13:01:00"),
    Row("a cada minuto", SP, "* * * * *", "pt", "2026-01-15T13:01:00"),
    Row("every 24 hours", SP, "0 0 * * *", "en", "2026-01-16T03:00:00"),
    Row("every 8 hours", BER, "0 */8 * * *", "en", "2026-01-15T15:00:00"),
    Row("2 horas", SP, "0 */2 * * *", "pt", "2026-01-15T15:00:00"),
    Row("a cada meia hora", SP, "*/30 * * * *", "pt", "2026-01-15T13:30:00"),
    Row("every 5 min", SP, "*/5 * * * *", "en", "2026-01-15T13:05:00"),
    Row("every 12 hours", UTC_, "0 */12 * * *", "en", "2026-01-16T00:00:00"),
    Row("cada 10 minutos", SP, "*/10 * * * *", "pt", "2026-01-15T13:10:00"),
    Row("every 3 hours", SP, "0 */3 * * *", "en", "2026-01-15T15:00:00"),
    Row("every 120 minutes", SP, "0 */2 * * *", "en", "2026-01-15T15:00:00"),
    Row("every 2 seconds", UTC_, "*/2 * * * * *", "en", "2026-01-15T13:00:02"),
    # Daily
    Row("daily at 07:30", SP, "30 7 * * *", "en", "2026-01-16T10:30:00"),
    Row("every day at 7:30am", SP, "30 7 * * *", "en", "2026-01-16T10:30:00"),
    Row("todo dia as 08:00", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("todo dia às 8h", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("todos os dias às 8h30", SP, "30 8 * * *", "pt", "2026-01-16T11:30:00"),
    Row("diariamente às 08:00", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("every day at 18:00", SP, "0 18 * * *", "en", "2026-01-15T21:00:00"),
    Row("every day at 6pm", BER, "0 18 * * *", "en", "2026-01-15T17:00:00"),
    Row("daily at noon", UTC_, "0 12 * * *", "en", "2026-01-16T12:00:00"),
    Row("todo dia ao meio-dia", SP, "0 12 * * *", "pt", "2026-01-15T15:00:00"),
    Row("every day at midnight", SP, "0 0 * * *", "en", "2026-01-16T03:00:00"),
    Row("todo dia à meia-noite", SP, "0 0 * * *", "pt", "2026-01-16T03:00:00"),
    Row("everyday at 10:00:30", SP, "30 0 10 * * *", "en", "2026-01-15T13:00:30"),
    Row("daily at 10:00", SP, "0 10 * * *", "en", "2026-01-16T13:00:00"),
    Row("todo dia 8h", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("every day @ 9pm", SP, "0 21 * * *", "en", "2026-01-16T00:00:00"),
    Row("daily at 12am", UTC_, "0 0 * * *", "en", "2026-01-16T00:00:00"),
    Row("daily at 12pm", UTC_, "0 12 * * *", "en", "2026-01-16T12:00:00"),
    Row("todo dia às 23h59", SP, "59 23 * * *", "pt", "2026-01-16T02:59:00"),
    Row("every day at 7:30 p.m.", UTC_, "30 19 * * *", "en", "2026-01-15T19:30:00"),
    Row("each day at 08:05", BER, "5 8 * * *", "en", "2026-01-16T07:05:00"),
    # Weekly (NOW is a Thursday)
    Row("every monday at 09:00", SP, "0 9 * * 1", "en", "2026-01-19T12:00:00"),
    Row("every mon, wed and fri at 9am", SP, "0 9 * * 1,3,5", "en", "2026-01-16T12:00:00"),
    Row("toda segunda às 9h", SP, "0 9 * * 1", "pt", "2026-01-19T12:00:00"),
    Row("toda segunda-feira as 09:00", SP, "0 9 * * 1", "pt", "2026-01-19T12:00:00"),
    Row("weekdays at 18:00", SP, "0 18 * * 1-5", "en", "2026-01-15T21:00:00"),
    Row("dias úteis às 18h", SP, "0 18 * * 1-5", "pt", "2026-01-15T21:00:00"),
    Row("weekends at 10:00", SP, "0 10 * * 0,6", "en", "2026-01-17T13:00:00"),
    Row("fins de semana às 10h", SP, "0 10 * * 0,6", "pt", "2026-01-17T13:00:00"),
    Row("every weekday at 7am", SP, "0 7 * * 1-5", "en", "2026-01-16T10:00:00"),
    Row("mon-fri at 9am", SP, "0 9 * * 1-5", "en", "2026-01-16T12:00:00"),
    Row("monday to friday at 08:30", SP, "30 8 * * 1-5", "en", "2026-01-16T11:30:00"),
    Row("de segunda a sexta às 8h", SP, "0 8 * * 1-5", "pt", "2026-01-16T11:00:00"),
    Row("todas as terças e quintas às 19h", SP, "0 19 * * 2,4", "pt", "2026-01-15T22:00:00"),
    Row("aos domingos às 10h", SP, "0 10 * * 0", "pt", "2026-01-18T13:00:00"),
    Row("every sunday at 10am", UTC_, "0 10 * * 0", "en", "2026-01-18T10:00:00"),
    Row("on saturdays at 11:15", BER, "15 11 * * 6", "en", "2026-01-17T10:15:00"),
    Row("toda sexta-feira às 17h30", SP, "30 17 * * 5", "pt", "2026-01-16T20:30:00"),
    Row("todo sábado às 9h", SP, "0 9 * * 6", "pt", "2026-01-17T12:00:00"),
    Row("friday to monday at 8am", SP, "0 8 * * 0,1,5,6", "en", "2026-01-16T11:00:00"),
    Row("every tue and thu at 7:45 pm", SP, "45 19 * * 2,4", "en", "2026-01-15T22:45:00"),
    Row("weekly on wednesday at 14:00", SP, "0 14 * * 3", "en", "2026-01-21T17:00:00"),
    Row("seg, qua e sex às 7h", SP, "0 7 * * 1,3,5", "pt", "2026-01-16T10:00:00"),
    Row("nos fins de semana às 9h", SP, "0 9 * * 0,6", "pt", "2026-01-17T12:00:00"),
    Row("todo dia útil às 8h", SP, "0 8 * * 1-5", "pt", "2026-01-16T11:00:00"),
    Row("business days at 17:00", SP, "0 17 * * 1-5", "en", "2026-01-15T20:00:00"),
    Row("quartas-feiras às 20h", SP, "0 20 * * 3", "pt", "2026-01-21T23:00:00"),
    Row("às segundas e sábados às 7h", SP, "0 7 * * 1,6", "pt", "2026-01-17T10:00:00"),
    Row("every thursday at 10:00:01", SP, "1 0 10 * * 4", "en", "2026-01-15T13:00:01"),
    Row("mondays at 9am", SP, "0 9 * * 1", "en", "2026-01-19T12:00:00"),
    Row("nos sábados às 10h", SP, "0 10 * * 6", "pt", "2026-01-17T13:00:00"),
    Row("toda semana na segunda às 9h", SP, "0 9 * * 1", "pt", "2026-01-19T12:00:00"),
    # Monthly
    Row("monthly on the 1st at 08:00", SP, "0 8 1 * *", "en", "2026-02-01T11:00:00"),
    Row("every month on day 15 at 12:00", SP, "0 12 15 * *", "en", "2026-01-15T15:00:00"),
    Row("todo dia 5 às 10h", SP, "0 10 5 * *", "pt", "2026-02-05T13:00:00"),
    Row("todo mês no dia 10 às 9h", SP, "0 9 10 * *", "pt", "2026-02-10T12:00:00"),
    Row(
        "on the 1st and 15th of every month at 9am", SP, "0 9 1,15 * *", "en", "2026-02-01T12:00:00"
    ),
    Row("mensalmente no dia 20 às 18h", SP, "0 18 20 * *", "pt", "2026-01-20T21:00:00"),
    Row("todo dia 31 às 23h", SP, "0 23 31 * *", "pt", "2026-02-01T02:00:00"),
    Row("no dia 1 de cada mês às 0h", SP, "0 0 1 * *", "pt", "2026-02-01T03:00:00"),
    Row("every month on the 30th at 6am", UTC_, "0 6 30 * *", "en", "2026-01-30T06:00:00"),
    Row("todo dia 5 e 20 às 10h", SP, "0 10 5,20 * *", "pt", "2026-01-20T13:00:00"),
    # Yearly
    Row("every year on december 25 at 9am", SP, "0 9 25 12 *", "en", "2026-12-25T12:00:00"),
    Row("todo ano em 25 de dezembro às 9h", SP, "0 9 25 12 *", "pt", "2026-12-25T12:00:00"),
    Row("annually on 1 january at 00:00", UTC_, "0 0 1 1 *", "en", "2027-01-01T00:00:00"),
    Row("todo dia 29 de fevereiro às 12h", UTC_, "0 12 29 2 *", "pt", "2028-02-29T12:00:00"),
    # Cron
    Row("0 9 * * 1-5", SP, "0 9 * * 1-5", "en", "2026-01-16T12:00:00"),
    Row("*/15 * * * *", SP, "*/15 * * * *", "en", "2026-01-15T13:15:00"),
    Row("30 0 9 * * mon-fri", SP, "30 0 9 * * 1-5", "en", "2026-01-16T12:00:30"),
    Row("@hourly", SP, "0 * * * *", "en", "2026-01-15T14:00:00"),
    Row("@daily", SP, "0 0 * * *", "en", "2026-01-16T03:00:00"),
    Row("@weekly", SP, "0 0 * * 0", "en", "2026-01-18T03:00:00"),
    Row("@monthly", SP, "0 0 1 * *", "en", "2026-02-01T03:00:00"),
    Row("@yearly", SP, "0 0 1 1 *", "en", "2027-01-01T03:00:00"),
    Row("@annually", SP, "0 0 1 1 *", "en", "2027-01-01T03:00:00"),
    Row("@midnight", SP, "0 0 * * *", "en", "2026-01-16T03:00:00"),
    Row("0 0 29 2 *", UTC_, "0 0 29 2 *", "en", "2028-02-29T00:00:00"),
    Row("5 4 * * sun", UTC_, "5 4 * * 0", "en", "2026-01-18T04:05:00"),
    Row("0 8,18 * * *", SP, "0 8,18 * * *", "en", "2026-01-15T21:00:00"),
    Row("0 0 1,15 * 1", UTC_, "0 0 1,15 * 1", "en", "2026-01-19T00:00:00"),
    Row("*/10 9-17 * * 1-5", SP, "*/10 9-17 * * 1-5", "en", "2026-01-15T13:10:00"),
    Row("0 22 * * 1-5", BER, "0 22 * * 1-5", "en", "2026-01-15T21:00:00"),
    Row("0-10/5 * * * *", UTC_, "0,5,10 * * * *", "en", "2026-01-15T13:05:00"),
    Row("0 9 * jan,jul *", UTC_, "0 9 * 1,7 *", "en", "2026-01-16T09:00:00"),
    Row("*/20 * * * * *", UTC_, "*/20 * * * * *", "en", "2026-01-15T13:00:20"),
    Row("0 12 * * 7", UTC_, "0 12 * * 0", "en", "2026-01-18T12:00:00"),
    Row("0 0 * * FRI-SUN", UTC_, "0 0 * * 0,5,6", "en", "2026-01-16T00:00:00"),
    Row("0 9-17/2 * * *", UTC_, "0 9,11,13,15,17 * * *", "en", "2026-01-15T15:00:00"),
    Row("0 0 1-31 * 1", UTC_, "0 0 * * 1", "en", "2026-01-19T00:00:00"),
    Row("0 0 0 * * *", UTC_, "0 0 * * *", "en", "2026-01-16T00:00:00"),
]

#: The same meaning written with odd casing, spacing and accents.
VARIANTS: list[Row] = [
    Row("  EVERY   Day  AT  8 AM ", SP, "0 8 * * *", "en", "2026-01-16T11:00:00"),
    Row("Every Monday At 09:00", SP, "0 9 * * 1", "en", "2026-01-19T12:00:00"),
    Row("TODO DIA ÀS 8H", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("Todo Dia Às 8h30", SP, "30 8 * * *", "pt", "2026-01-16T11:30:00"),
    Row("todo   dia   as   8h", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("todo dia às 08:00", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("todo dia as 8 h", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("Diariamente as 8h", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("DIAS UTEIS AS 18H", SP, "0 18 * * 1-5", "pt", "2026-01-15T21:00:00"),
    Row("dias uteis as 18:00", SP, "0 18 * * 1-5", "pt", "2026-01-15T21:00:00"),
    Row("Fins de Semana as 10h", SP, "0 10 * * 0,6", "pt", "2026-01-17T13:00:00"),
    Row("toda terça às 9h", SP, "0 9 * * 2", "pt", "2026-01-20T12:00:00"),
    Row("toda terca as 9h", SP, "0 9 * * 2", "pt", "2026-01-20T12:00:00"),
    Row("TODO SABADO AS 9H", SP, "0 9 * * 6", "pt", "2026-01-17T12:00:00"),
    Row("todo mes no dia 10 as 9h", SP, "0 9 10 * *", "pt", "2026-02-10T12:00:00"),
    Row("Todo Mês No Dia 10 Às 9h", SP, "0 9 10 * *", "pt", "2026-02-10T12:00:00"),
    Row("AMANHÃ ÀS 9H", SP, "once", "pt", "2026-01-16T12:00:00"),
    Row("Hoje  às  18h", SP, "once", "pt", "2026-01-15T21:00:00"),
    Row("In 10 Min", SP, "once", "en", "2026-01-15T13:10:00"),
    Row("EM 10 MINUTOS", SP, "once", "pt", "2026-01-15T13:10:00"),
    Row("Daqui A 2 Horas", SP, "once", "pt", "2026-01-15T15:00:00"),
    Row("Tomorrow at 9:00", SP, "once", "en", "2026-01-16T12:00:00"),
    Row("  6h  ", SP, "0 */6 * * *", "en", "2026-01-15T15:00:00"),
    Row("6 h", SP, "0 */6 * * *", "en", "2026-01-15T15:00:00"),
    Row("15M", SP, "*/15 * * * *", "en", "2026-01-15T13:15:00"),
    Row("30min", SP, "*/30 * * * *", "en", "2026-01-15T13:30:00"),
    Row("HOURLY", SP, "0 * * * *", "en", "2026-01-15T14:00:00"),
    Row("De Hora Em Hora", SP, "0 * * * *", "pt", "2026-01-15T14:00:00"),
    Row("A Cada 15 Minutos", SP, "*/15 * * * *", "pt", "2026-01-15T13:15:00"),
    Row("every mon,wed,fri at 9am", SP, "0 9 * * 1,3,5", "en", "2026-01-16T12:00:00"),
    Row("every mon , wed and fri at 9 am", SP, "0 9 * * 1,3,5", "en", "2026-01-16T12:00:00"),
    Row("Every Mon, Wed & Fri @ 9AM", SP, "0 9 * * 1,3,5", "en", "2026-01-16T12:00:00"),
    Row("WEEKDAYS AT 6PM", SP, "0 18 * * 1-5", "en", "2026-01-15T21:00:00"),
    Row("Weekends at 10:00", SP, "0 10 * * 0,6", "en", "2026-01-17T13:00:00"),
    Row("Monthly on the 1st at 08:00", SP, "0 8 1 * *", "en", "2026-02-01T11:00:00"),
    Row("@DAILY", SP, "0 0 * * *", "en", "2026-01-16T03:00:00"),
    Row("0 9 * * MON-FRI", SP, "0 9 * * 1-5", "en", "2026-01-16T12:00:00"),
    Row("  0   9  *  *  1-5  ", SP, "0 9 * * 1-5", "en", "2026-01-16T12:00:00"),
    Row("Daily At 7:30PM", UTC_, "30 19 * * *", "en", "2026-01-15T19:30:00"),
    Row("todo dia\tàs\u00a08h", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("todo dia a\u0300s 8h", SP, "0 8 * * *", "pt", "2026-01-16T11:00:00"),
    Row("SEGUNDA A SEXTA ÀS 8H", SP, "0 8 * * 1-5", "pt", "2026-01-16T11:00:00"),
    Row("toda segunda feira às 9h", SP, "0 9 * * 1", "pt", "2026-01-19T12:00:00"),
    Row("every day at 8am", "america/sao_paulo", "0 8 * * *", "en", "2026-01-16T11:00:00"),
]


def _expect(row: Row, schedule: NormalizedSchedule) -> None:
    assert schedule.language == row.language
    if row.shape == "once":
        assert schedule.type == "once"
        assert schedule.cron is None
        assert schedule.every_seconds is None
        assert schedule.run_at == datetime.fromisoformat(row.fires).replace(tzinfo=UTC)
    elif row.shape.startswith("every:"):
        assert schedule.type == "recurring"
        assert schedule.cron is None
        assert schedule.every_seconds == int(row.shape.removeprefix("every:"))
        assert schedule.anchor == NOW.replace(microsecond=0)
    else:
        assert schedule.type == "recurring"
        assert schedule.cron == row.shape
        assert schedule.every_seconds is None
        assert schedule.run_at is None


@pytest.mark.parametrize("row", ROWS + VARIANTS, ids=lambda r: f"{r.phrase.strip()}@{r.zone}")
def test_phrase_means_the_expected_schedule_and_fires_on_time(row: Row) -> None:
    schedule = parse(row.phrase, row.zone, NOW)
    _expect(row, schedule)
    fires = next_after(schedule, NOW)
    assert fires == datetime.fromisoformat(row.fires).replace(tzinfo=UTC)
    assert fires is not None
    assert fires.tzinfo is UTC


def test_the_table_is_as_large_as_the_acceptance_asks() -> None:
    assert len(ROWS) + len(VARIANTS) >= 150
    assert {r.language for r in ROWS} == {"en", "pt"}


@pytest.mark.parametrize(
    ("phrase", "zone", "description"),
    [
        ("todo dia às 08:00", SP, "Todo dia às 08:00 (America/Sao_Paulo)"),
        ("every day at 8am", SP, "Every day at 08:00 (America/Sao_Paulo)"),
        ("0 8 * * *", SP, "Every day at 08:00 (America/Sao_Paulo)"),
        ("weekdays at 18:00", UTC_, "Every weekday (Monday to Friday) at 18:00 (UTC)"),
        ("dias úteis às 18h", UTC_, "De segunda a sexta-feira às 18:00 (UTC)"),
        (
            "every mon, wed and fri at 9am",
            UTC_,
            "Every Monday, Wednesday and Friday at 09:00 (UTC)",
        ),
        ("às segundas e sábados às 7h", UTC_, "Às segundas e aos sábados às 07:00 (UTC)"),
        ("toda segunda às 9h", UTC_, "Toda segunda-feira às 09:00 (UTC)"),
        ("todo sábado às 9h", UTC_, "Todo sábado às 09:00 (UTC)"),
        ("fins de semana às 10h", UTC_, "Aos sábados e domingos às 10:00 (UTC)"),
        ("todo dia 5 às 10h", UTC_, "Todo mês no dia 5 às 10:00 (UTC)"),
        ("monthly on the 1st at 08:00", UTC_, "Every month on day 1 at 08:00 (UTC)"),
        ("todo ano em 25 de dezembro às 9h", UTC_, "Todo ano em 25 de dezembro às 09:00 (UTC)"),
        ("every year on dec 25 at 9am", UTC_, "Every year on December 25 at 09:00 (UTC)"),
        ("6h", BER, "Every 6 hours at 00:00, 06:00, 12:00 and 18:00 (Europe/Berlin)"),
        ("de 6 em 6 horas", BER, "A cada 6 horas, às 00:00, 06:00, 12:00 e 18:00 (Europe/Berlin)"),
        ("every 15 minutes", UTC_, "Every 15 minutes (UTC)"),
        ("a cada 15 minutos", UTC_, "A cada 15 minutos (UTC)"),
        ("hourly", UTC_, "Every hour (UTC)"),
        ("de hora em hora", UTC_, "De hora em hora (UTC)"),
        ("every 2 hours", UTC_, "Every 2 hours from 00:00 (UTC)"),
        ("7h", SP, "Every 7 hours, counting from 2026-01-15 10:00 (America/Sao_Paulo)"),
        (
            "a cada 90 minutos",
            SP,
            "A cada 1 hora e 30 minutos, contando de 15/01/2026 às 10:00 (America/Sao_Paulo)",
        ),
        ("in 10 min", SP, "Once at 2026-01-15 10:10 (America/Sao_Paulo)"),
        ("amanhã às 9h", SP, "Uma vez em 16/01/2026 às 09:00 (America/Sao_Paulo)"),
        (
            "*/10 9-17 * * 1-5",
            UTC_,
            "Every 10 minutes from 09:00 to 17:59, every weekday (Monday to Friday) (UTC)",
        ),
        ("0 0 1,15 * 1", UTC_, "On days 1 and 15 of the month or every Monday at 00:00 (UTC)"),
        ("0 8,18 * * *", UTC_, "Every day at 08:00 and 18:00 (UTC)"),
        ("every 30 seconds", UTC_, "Every 30 seconds (UTC)"),
        ("0 9 * jan,jul *", UTC_, "Every day in January and July at 09:00 (UTC)"),
        ("7,19 */5 * * *", UTC_, "At minutes 7 and 19, at hours 0, 5, 10, 15 and 20 (UTC)"),
    ],
)
def test_description_reads_naturally_in_the_phrase_language(
    phrase: str, zone: str, description: str
) -> None:
    assert parse(phrase, zone, NOW).description == description


def test_time_zone_names_are_matched_case_insensitively_and_stored_canonically() -> None:
    assert parse("hourly", "america/sao_paulo", NOW).timezone == SP
    assert parse("hourly", "utc", NOW).timezone == "UTC"


@pytest.mark.parametrize(
    "example", [e for form in ACCEPTED_FORMS for e in form.examples], ids=lambda e: e
)
def test_every_example_the_error_offers_is_accepted(example: str) -> None:
    assert parse(example, SP, NOW).timezone == SP


def test_a_calendar_schedule_read_again_later_is_the_same_one() -> None:
    later = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
    first = parse("todo dia as 08:00", SP, NOW)
    assert parse("todo dia as 08:00", SP, later) is first
    assert parse("todo dia as 08:00", BER, later).timezone == BER


@pytest.mark.parametrize("phrase", ["in 10 min", "every 7 minutes", "tomorrow at 9am"])
def test_schedules_that_depend_on_now_are_read_against_each_now(phrase: str) -> None:
    later = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
    assert parse(phrase, SP, NOW) != parse(phrase, SP, later)
