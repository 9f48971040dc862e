"""Small shared utilities: atomic file writing, logging setup."""
