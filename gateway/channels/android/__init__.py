"""The Android channel: a phone running SMS Gateway for Android in Local Server mode, on the office LAN."""
