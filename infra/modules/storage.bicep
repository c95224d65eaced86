// Storage for the Functions host (timer locks, host keys), the Flex Consumption deployment
// package container and large execution results. Shared keys are off: the app uses its managed identity (AzureWebJobsStorage__accountName).
param baseName string
param location string
param tags object

var deploymentContainerName = 'app-package'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: toLower(replace('${baseName}store', '-', ''))
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Results over Cosmos' 2 MB document limit (`blobRef: execution-data/{executionId}/result.json`),
// written by the workflow engine and streamed by the query API.
resource executionDataContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'execution-data'
  properties: {
    publicAccess: 'None'
  }
}

output accountName string = account.name
output deploymentContainerName string = deploymentContainer.name
