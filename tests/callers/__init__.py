"""The generated Go, PHP and TypeScript callers, end to end against a real worker."""
