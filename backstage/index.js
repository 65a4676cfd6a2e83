// A minimal Backstage backend wired to Golden Path (`make backstage`; the end-to-end tests run the same):
// the catalog (with the Template kind), the scaffolder, the proxy and Roadie's http:backstage:request.
// Golden Path's actions reach the scaffolder natively through Backstage's distributed actions protocol
// (backend.actions.pluginSources + discovery.endpoints in app-config.yaml); the proxy and
// http:backstage:request are the fallback for Backstage instances without distributed actions.
// Run: node index.js --config app-config.yaml (with the environment app-config.yaml names).
'use strict';

const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend'));
backend.add(require('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'));
backend.add(require('@backstage/plugin-scaffolder-backend'));
backend.add(require('@backstage/plugin-proxy-backend'));
backend.add(require('@roadiehq/scaffolder-backend-module-http-request'));
backend.start();
