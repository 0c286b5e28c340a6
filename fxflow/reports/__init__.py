"""What people read: the terminal summary and the partition report."""
