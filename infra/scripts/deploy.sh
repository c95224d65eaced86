#!/bin/sh
# Builds the linux-x64 release binary, assembles the deploy root and zip with
# `bifrost-workers package`, and deploys the zip to the Function App that infra/main.bicep
# created. Run by `azd up` (postprovision hook, which exports the Bicep outputs), or by hand:
#   AZURE_RESOURCE_GROUP=<rg> AZURE_FUNCTION_APP_NAME=<app> infra/scripts/deploy.sh
set -eu
: "${AZURE_RESOURCE_GROUP:?set AZURE_RESOURCE_GROUP (an output of infra/main.bicep)}"
: "${AZURE_FUNCTION_APP_NAME:?set AZURE_FUNCTION_APP_NAME (an output of infra/main.bicep)}"
cd "$(dirname "$0")/../.."

cargo build --release --locked
target/release/bifrost-workers package --out dist
az functionapp deployment source config-zip \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "$AZURE_FUNCTION_APP_NAME" \
  --src dist/bifrost-workers.zip
echo "deployed: $(az functionapp show --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" --query defaultHostName --output tsv)/api/health"
