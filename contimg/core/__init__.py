"""What every stage shares: settings and paths, the instrument, constants, the primary beam, reference data."""
