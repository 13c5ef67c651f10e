"""A study's results: each trial's outcome, the tables beside the paper's and the verdict on each claim.
Pure pandas, so the dashboard reads them without Ray or torch."""
