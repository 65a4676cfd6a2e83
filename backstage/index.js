// A minimal Backstage backend wired to Golden Path (`make backstage`; the end-to-end tests run the same):
// the catalog (with the Template kind), the scaffolder, the proxy and Roadie's http:backstage:request,
// the auth backend with the guest provider (real users without an identity provider: a task started with a
// guest's token runs as that person, and Golden Path sees who through the `obo` token), and MCP actions
// (every action of the actions registry, Golden Path's included, as MCP tools for AI agents).
// Golden Path's actions reach the scaffolder natively through Backstage's distributed actions protocol
// (backend.actions.pluginSources + discovery.endpoints in app-config.yaml); the proxy and
// http:backstage:request are the fallback for Backstage instances without distributed actions.
// Run: node index.js --config app-config.yaml (with the environment app-config.yaml names).
'use strict';

const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-auth-backend'));
backend.add(require('@backstage/plugin-auth-backend-module-guest-provider'));
backend.add(require('@backstage/plugin-catalog-backend'));
backend.add(require('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'));
backend.add(require('@backstage/plugin-scaffolder-backend'));
backend.add(require('@backstage/plugin-mcp-actions-backend'));
backend.add(require('@backstage/plugin-proxy-backend'));
backend.add(require('@roadiehq/scaffolder-backend-module-http-request'));
backend.start();
