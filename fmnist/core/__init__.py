"""The shared base: data, files, errors, clusters, runtimes, fenced private APIs."""
