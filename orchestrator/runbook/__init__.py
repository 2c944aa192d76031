"""Runbooks: the YAML format of a region switch (`models`), loading and validation (`loader`),
resolution for one run (`resolve`), and the small pieces both use (`durations`, `templates`,
`graph`).

Import the submodule you need: the models and their helpers sit below the step types
(`activities`), the loader and the resolver above them (they consult the step registry), so this
package's face imports nothing.
"""
