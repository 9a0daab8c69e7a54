"""Memory: embeddings, the LanceDB store, remember / recall / feedback."""
