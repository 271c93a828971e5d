"""Zero-shot evaluation: tasks → encode → exact search → per-query metrics and bias."""
