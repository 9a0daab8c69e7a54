"""ATOM_PLUGINS=tests.workflow_plugin: the test tools in a worker process."""

from tests import workflow_tools

workflow_tools.register()
