"""The extractor's hot path, compiled at install time (needs gcc and the Python headers);
everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("feature_extractor._kernel", ["feature_extractor/_kernel.c"],
                             extra_compile_args=["-O2", "-Werror=incompatible-pointer-types",
                                                 "-Werror=implicit-function-declaration"])])
