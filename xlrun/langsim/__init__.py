"""Language similarity: distance sources (typology, script, embeddings) and clustering."""
