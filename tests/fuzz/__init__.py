"""Property-based fuzz tests: every parser refuses bad input with its own error, never another."""
