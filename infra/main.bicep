// bifrost-workers in Azure: Cosmos DB (serverless) with the containers the code expects, Azure
// SignalR Service (Serverless mode), a storage account for the Functions host, Application
// Insights, and a Linux Flex Consumption Function App running the Rust custom handler with a
// system-assigned identity. Names that the code also uses (database, containers, partition keys,
// TTLs, app settings) are checked against the code by `cargo test --test e2e infra_`.
targetScope = 'resourceGroup'

@description('Prefix of every resource name: 3 to 11 lowercase letters or digits, starting with a letter.')
@minLength(3)
@maxLength(11)
param namePrefix string

@description('Region of every resource. It must offer the Flex Consumption plan (`az functionapp list-flexconsumption-locations`).')
param location string = resourceGroup().location

@description('Optional Entra object id of a person or group that also gets Cosmos DB data access (for debugging with `az cosmosdb sql`); empty for none.')
param operatorPrincipalId string = ''

@description('SignalR Service tier: Free_F1 (20 connections, for trials) or Standard_S1.')
@allowed([
  'Free_F1'
  'Standard_S1'
])
param signalRSku string = 'Free_F1'

@description('Largest number of Function App instances the plan may scale out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Tags put on every resource.')
param tags object = {}

// A short hash keeps globally unique names (storage, Cosmos, SignalR, the app) unique per resource group.
var suffix = take(uniqueString(subscription().id, resourceGroup().id, namePrefix), 6)
var baseName = '${namePrefix}${suffix}'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    baseName: baseName
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    baseName: baseName
    location: location
    tags: tags
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    baseName: baseName
    location: location
    tags: tags
  }
}

module signalr 'modules/signalr.bicep' = {
  name: 'signalr'
  params: {
    baseName: baseName
    location: location
    sku: signalRSku
    tags: tags
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    baseName: baseName
    location: location
    tags: tags
    storageAccountName: storage.outputs.accountName
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    cosmosEndpoint: cosmos.outputs.endpoint
    signalRName: signalr.outputs.name
    maximumInstanceCount: maximumInstanceCount
  }
}

module access 'modules/access.bicep' = {
  name: 'access'
  params: {
    principalId: functionApp.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    cosmosAccountName: cosmos.outputs.accountName
    storageAccountName: storage.outputs.accountName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// azd reads these outputs into its environment; the deploy hook uses the first two.
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output AZURE_SIGNALR_HOSTNAME string = signalr.outputs.hostName
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
