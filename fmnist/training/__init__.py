"""Training: sweep files, Keras models, Ray tasks, selection and the export build."""
