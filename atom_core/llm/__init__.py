"""Models: the LiteLLM gateway, provider credentials, prices and the offline model."""
