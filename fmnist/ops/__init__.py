"""Operations: versions and labels, the quality gate, TF Serving's config, runs, guard."""
