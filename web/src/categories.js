// The feed's spending categories (fjordbank/domain/categories.py) with labels and colours.
export const CATEGORIES = {
  groceries: ["Groceries", "#2e7d32"],
  restaurants: ["Restaurants", "#ef6c00"],
  transport: ["Transport", "#1565c0"],
  travel: ["Travel", "#6a1b9a"],
  shopping: ["Shopping", "#ad1457"],
  health: ["Health", "#00838f"],
  entertainment: ["Entertainment", "#c62828"],
  subscriptions: ["Subscriptions", "#4527a0"],
  housing: ["Housing", "#5d4037"],
  bills: ["Bills", "#455a64"],
  cash: ["Cash", "#827717"],
  transfers: ["Transfers", "#757575"],
  income: ["Income", "#1b5e20"],
  other: ["Other", "#9e9e9e"],
};

export const label = (category) => (CATEGORIES[category] || [category || "Other"])[0];
export const colour = (category) => (CATEGORIES[category] || [null, "#9e9e9e"])[1];
