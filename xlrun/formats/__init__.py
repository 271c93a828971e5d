"""File formats other tools read and write: TREC runs and qrels (:mod:`.trec`)."""
