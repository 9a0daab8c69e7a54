"""Models: the LiteLLM gateway, provider credentials, prices and the offline model."""

# ATOM's offline model, registered with litellm as the custom provider "atom".
# Defined here, apart from the heavy modules, so any layer can name it cheaply.
OFFLINE_PROVIDER = "atom"
OFFLINE_MODEL = f"{OFFLINE_PROVIDER}/offline"
