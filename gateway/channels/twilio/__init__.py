"""The Twilio channel: SMS out through Twilio's REST API, and the checks on its webhooks."""
