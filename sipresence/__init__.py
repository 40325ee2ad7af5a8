"""sipresence: a SIP/SIMPLE presence agent for voice systems."""

__version__ = "0.1.0"
