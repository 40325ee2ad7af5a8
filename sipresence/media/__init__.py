"""Media for callers: prompts and the announcement service (extra ``media``: pjsua2)."""
