"""Texts for people, one module per feature (``TEXTS``: key → (zh, en)), merged in ``bot.texts``."""
