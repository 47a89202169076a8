"""Cross-cutting trust mechanisms: access rules, rate limits, client address, log masking, body limits."""
