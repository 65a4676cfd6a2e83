// A minimal Backstage backend for the Golden Path end-to-end tests: the catalog (with the Template
// kind) and the scaffolder. Golden Path's actions reach the scaffolder through Backstage's
// distributed actions protocol (backend.actions.pluginSources + discovery.endpoints in the config).
// Run: node index.js --config app-config.yaml
'use strict';

const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend'));
backend.add(require('@backstage/plugin-catalog-backend-module-scaffolder-entity-model'));
backend.add(require('@backstage/plugin-scaffolder-backend'));
backend.start();
