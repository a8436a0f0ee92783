/**
 * `portico/plugin`: the plugin SDK. `definePlugin()` and every type a plugin
 * sees (the definition, the request context, header edits, exits, the init
 * context) and the helpers the core offers plugins. It is the entry the
 * built-in plugins use (src/core/plugin/index.ts), so there is one contract;
 * its documentation comments are the reference (docs/plugin-development.md
 * walks through it).
 */
export * from './core/plugin/index.js';
