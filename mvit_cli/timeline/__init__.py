"""Labels over time for long videos: sliding windows, segments, and what they are written as."""
