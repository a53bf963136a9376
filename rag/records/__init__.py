"""What people did with the answers: the answers given and the feedback on them, kept beside the index."""
