"""The SIP agent: answers calls from a GSM-to-SIP gateway and runs the voice menu's TwiML."""
