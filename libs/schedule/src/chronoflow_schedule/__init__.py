"""The schedule language: natural-language (EN/PT) and cron schedules, time zones, DST."""
