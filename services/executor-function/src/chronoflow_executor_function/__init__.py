"""User JavaScript in QuickJS on wasmtime."""
