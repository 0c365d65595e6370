"""The Gammu channel: a GSM modem driven by gammu-smsd, talking to us through its files backend."""
