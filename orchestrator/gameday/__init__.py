"""Game days: scheduled drills that inject a fault, switch, verify, fail back, and report."""
