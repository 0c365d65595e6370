"""RQ jobs: plain functions taking ids, safe to run twice, so a retry or crash never loses or repeats work."""
