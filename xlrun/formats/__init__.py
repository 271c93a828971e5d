"""Files that other IR and embedding tools read: MTEB result files (:mod:`.mteb`)."""
