"""A local Backstage backend for Golden Path (`make backstage`), and the npm installs the tests share."""
