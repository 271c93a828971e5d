"""Training data: sources that yield parallel question–passage examples."""
