// The project layer: project.yaml, the staged life-cycle runner and the run registry.
