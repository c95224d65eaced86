// Example parameters. With azd the values come from its environment (`azd env set`); with plain
// `az deployment group create --parameters infra/main.bicepparam` edit them here.
using 'main.bicep'

param namePrefix = readEnvironmentVariable('BIFROST_NAME_PREFIX', 'bifrost')
param location = readEnvironmentVariable('AZURE_LOCATION', 'swedencentral')
param operatorPrincipalId = readEnvironmentVariable('AZURE_PRINCIPAL_ID', '')
param signalRSku = 'Free_F1'
param maximumInstanceCount = 40
param tags = {
  'azd-env-name': readEnvironmentVariable('AZURE_ENV_NAME', 'bifrost')
  app: 'bifrost-workers'
}
