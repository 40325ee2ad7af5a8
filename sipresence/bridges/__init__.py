"""Bridges from the presence core to other networks (XMPP) and systems."""
