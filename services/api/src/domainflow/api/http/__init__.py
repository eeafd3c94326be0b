"""What every REST slice shares at the HTTP edge: envelope, problems, request ids, guards."""
