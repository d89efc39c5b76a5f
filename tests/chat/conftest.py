"""The chat tests use the shared fixtures of tests/conftest.py (small_faq, communicator_factory)."""
