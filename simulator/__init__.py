"""A local stand-in for the Telnyx network: fake Call Control API, carrier, scripted callers, load runs."""
