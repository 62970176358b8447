#!/usr/bin/env node
// Entry point of the `mcplex` command: runs the compiled CLI.
import '../dist/cli/main.js';
