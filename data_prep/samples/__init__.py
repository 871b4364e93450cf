"""Raw samples: finding their files (folders, grouping folders, manifests) and reading them."""
