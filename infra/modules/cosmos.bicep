// Cosmos DB for NoSQL, serverless, with database `bifrost` and every container the code uses
// (src/store/containers.rs): names, partition keys and default TTLs must match it, which the
// consistency test checks. Keys are switched off: the change-feed trigger (and the app's own
// store access) connect with the app's managed identity and the "Cosmos DB Built-in Data
// Contributor" role, people with `az login` and the optional operator role (modules/access.bicep).
param baseName string
param location string
param tags object

var databaseName = 'bifrost'
// 14 days: executions and their logs expire on their own (the plan's retention).
var executionTtlSeconds = 1209600

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: toLower('${baseName}-cosmos')
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    minimalTlsVersion: 'Tls12'
    disableLocalAuth: true
    // Containers and settings change through ARM (this template), never with account keys.
    disableKeyBasedMetadataWriteAccess: true
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

// Execution metadata, one document per execution. Lists filter by status/workflow/user inside a
// scope and page by startedAt (then id, the tiebreak of every query: a multi-key ORDER BY that
// Cosmos rejects without its composite index); metrics reconcile by completedAt. The free-form inputData and error text are never filtered on: not indexed.
resource executions 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'executions'
  properties: {
    resource: {
      id: 'executions'
      partitionKey: {
        paths: [
          '/scope'
        ]
        kind: 'Hash'
      }
      defaultTtl: executionTtlSeconds
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/inputData/*'
          }
          {
            path: '/errorMessage/?'
          }
          {
            path: '/"_etag"/?'
          }
        ]
        compositeIndexes: [
          [
            {
              path: '/startedAt'
              order: 'descending'
            }
            {
              path: '/id'
              order: 'descending'
            }
          ]
          [
            {
              path: '/completedAt'
              order: 'descending'
            }
            {
              path: '/id'
              order: 'descending'
            }
          ]
        ]
      }
    }
  }
}

// Logs, variables, state and results per execution: read by type with sequence (logs, after a
// sequence, optionally without a level) or version (latest variables), each ordered with id as the
// tiebreak, so only those paths are indexed (log messages and data are write-heavy and never
// filtered on). Every multi-key ORDER BY needs its composite index, or Cosmos rejects the query.
resource executionData 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'execution_data'
  properties: {
    resource: {
      id: 'execution_data'
      partitionKey: {
        paths: [
          '/executionId'
        ]
        kind: 'Hash'
      }
      defaultTtl: executionTtlSeconds
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/executionId/?'
          }
          {
            path: '/type/?'
          }
          {
            path: '/sequence/?'
          }
          {
            path: '/version/?'
          }
          {
            path: '/timestamp/?'
          }
          {
            path: '/level/?'
          }
        ]
        excludedPaths: [
          {
            path: '/*'
          }
        ]
        compositeIndexes: [
          [
            {
              path: '/sequence'
              order: 'ascending'
            }
            {
              path: '/id'
              order: 'ascending'
            }
          ]
          [
            {
              path: '/version'
              order: 'descending'
            }
            {
              path: '/id'
              order: 'descending'
            }
          ]
        ]
      }
    }
  }
}

// Daily metrics and user/membership documents per scope; kept forever (no TTL).
resource entities 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'entities'
  properties: {
    resource: {
      id: 'entities'
      partitionKey: {
        paths: [
          '/scope'
        ]
        kind: 'Hash'
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/workflows/*'
          }
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }
  }
}

// Change-feed leases of the Functions Cosmos trigger (and serve-mode checkpoints). The trigger
// cannot create it with identity-based access, so it is created here.
resource leases 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'leases'
  properties: {
    resource: {
      id: 'leases'
      partitionKey: {
        paths: [
          '/id'
        ]
        kind: 'Hash'
      }
    }
  }
}

// Batches that failed every retry, kept so nothing is lost; the payload is never queried.
resource deadletters 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = {
  parent: database
  name: 'deadletters'
  properties: {
    resource: {
      id: 'deadletters'
      partitionKey: {
        paths: [
          '/functionName'
        ]
        kind: 'Hash'
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [
          {
            path: '/*'
          }
        ]
        excludedPaths: [
          {
            path: '/documents/*'
          }
          {
            path: '/rawPayload/?'
          }
        ]
      }
    }
  }
}

output accountName string = account.name
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
