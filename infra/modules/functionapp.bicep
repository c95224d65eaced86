// The Function App: Linux, Flex Consumption, runtime `custom` (the Rust binary named in
// host.json), system-assigned identity. App settings name what the code reads
// (src/config.rs SETTINGS) and the connections the bindings name (functions/*/function.json);
// the consistency test checks both. Identity-based connections (`<name>__accountEndpoint`,
// `<name>__accountName`) carry no secret.
param baseName string
param location string
param tags object
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param cosmosEndpoint string
param signalRName string
param maximumInstanceCount int

// `cosmosEndpoint` is `https://NAME.documents.azure.com:443/`; the store URL takes `host:port`.
var cosmosHost = replace(replace(cosmosEndpoint, 'https://', ''), '/', '')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

#disable-next-line no-unused-existing-resources
resource signalr 'Microsoft.SignalRService/signalR@2024-03-01' existing = {
  name: signalRName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${baseName}-plan'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: '${baseName}-func'
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      // Flex Consumption sets FUNCTIONS_WORKER_RUNTIME from this (it rejects the app setting).
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: {
    // Host storage through the managed identity: no account key anywhere.
    AzureWebJobsStorage__accountName: storage.name
    // Change-feed triggers through the managed identity and the Cosmos data-plane role.
    CosmosDbConnection__accountEndpoint: cosmosEndpoint
    // SignalR: the binary signs its REST calls and negotiate tokens itself, which needs the access
    // key (the identity form `__serviceUri` only serves the host's own bindings).
    AzureSignalRConnectionString: signalr.listKeys().primaryConnectionString
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    // The documents: the same Cosmos account the triggers read, through the managed identity
    // (its data-plane role is in modules/access.bicep).
    BIFROST_STORE: 'cosmos://${cosmosHost}/?identity=managed'
    // Nothing is kept on the instance; the app root is read-only, so any scratch goes to /tmp.
    BIFROST_DATA: '/tmp/bifrost'
    // Results over 2 MB: the `execution-data` container of this storage account (created by
    // modules/storage.bicep; the identity is Storage Blob Data Owner there), through the managed
    // identity. `migrate --blobs azblob:…` copies legacy blobs into it.
    BIFROST_BLOBS: 'azblob:${storage.properties.primaryEndpoints.blob}'
    // Logs go to stdout (Information in App Insights); the host maps stderr to Error.
    RUST_LOG: 'info'
  }
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
output principalId string = app.identity.principalId
