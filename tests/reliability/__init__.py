"""Reliability and security tests (issue 8): see RELIABILITY.md."""
