"""Files that other IR and embedding tools read and write: TREC runs and qrels
(:mod:`.trec`), MTEB result files (:mod:`.mteb`)."""
