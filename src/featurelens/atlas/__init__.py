"""What each channel detects: dataset examples with receptive fields, feature visualization,
statistics, and how the channels formed in training (snapshots, CKA)."""
