"""The voice menu as plain functions: call state and input in, the next step out; no Redis, no Flask."""
